"""Messages resource: listing, search, upload, and one message's details, flags, move, delete, source, text and attachments."""
