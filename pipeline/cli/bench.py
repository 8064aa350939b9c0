"""Commands for this stage are added here."""
