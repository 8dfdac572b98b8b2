"""Built-in plugins: ordinary plugin modules that the core registers like any third-party one."""
