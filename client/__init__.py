"""Ariadne's client: ``core`` is the GUI-free engine, ``gui`` the PySide6 face on top of it."""
