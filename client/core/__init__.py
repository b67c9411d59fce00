"""The GUI-free client engine: profile storage, relay link, device directory, sessions, and the
:class:`~client.core.client.AriadneClient` API with its event stream. Never imports Qt."""
