#!/bin/sh
# Run once by the postgres image when it creates the primary's data directory:
# lets the replica service copy and stream it as the payfeed user.
echo "host replication ${POSTGRES_USER} all scram-sha-256" >> "$PGDATA/pg_hba.conf"
