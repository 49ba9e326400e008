"""Submit resource: send mail now or later through the account's SMTP server, via the outbox."""
