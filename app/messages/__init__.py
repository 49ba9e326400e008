"""Messages resource: paged message listing of a folder, newest first."""
