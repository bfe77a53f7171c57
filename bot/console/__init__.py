"""The operator console (issue 5): accounts, sessions, CSRF, audit log and the pages on top.

Entry point: :func:`bot.console.routes.setup_console`. Pages added by other modules use the
helpers documented in :mod:`bot.console.security` (``current_user``, ``require_role``,
``console_db``), :mod:`bot.console.pages` (``render``) and :mod:`bot.console.audit` (``record``).
"""
