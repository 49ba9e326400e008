"""GET /v1/account/{account}/changes: the replayable change feed, read from a cursor."""
