"""The command line's commands, one module each (``cvstore.cli`` parses and dispatches).

Nothing here is imported by ``import cvstore``; heavy libraries (matplotlib)
are imported only inside the command that needs them.
"""
