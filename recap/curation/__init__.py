"""Curation: filters, dedup, the release table and its data card (`recap curate`)."""
