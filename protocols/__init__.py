"""Protocol front ends (smtp, imap, pop3, web, activesync). Each speaks its wire
format and nothing else; see docs/architecture.md for the import rules."""
