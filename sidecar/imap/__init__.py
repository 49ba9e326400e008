"""IMAP-side helpers shared by sidecar ops: decoding (codec) and listing entry builders."""
