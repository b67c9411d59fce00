"""The PySide6 face of Ariadne: windows, models and widgets on top of ``client.core``.

Runs asyncio inside the Qt loop (qasync). Never does cryptography itself: everything secret
happens in ``client.core`` and ``shared``; this package shows states and forwards intents.
"""
