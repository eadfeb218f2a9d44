"""The raw store: every reading as received, in SQL (MariaDB/MySQL or SQLite), migrated."""
