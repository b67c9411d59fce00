"""Ariadne's pure protocol and cryptography package.

Everything here takes values and returns values: no sockets, no Qt, no SQLite. Both the relay and
the client import it, so every cryptographic decision is made here, once. See ``PROTOCOL.md``.
"""
