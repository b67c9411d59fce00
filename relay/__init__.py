"""Ariadne's relay: an asyncio websocket server that routes end-to-end encrypted envelopes.

It keeps accounts, the key directory (pre-key bundles and AMK-signed device lists) and a durable
queue per device in SQLite. It never holds a key that could decrypt a message.
"""
