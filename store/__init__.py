"""What both sides share: settings, the database and its tables, migrations,
errors, tokens and the payer sketches' format. Imports only `schemas`."""
