#!/bin/sh
# The container's entrypoint: refuse to start on settings that would lose data.
#
# Without PAYFEED_DATABASE_URL payfeed runs an embedded PostgreSQL, and without
# PAYFEED_SECRET_KEY it generates a key, both under PAYFEED_HOME: inside a
# container that is a throwaway directory, so recreating the container would
# drop the database and change every payer hash. Either set both, or set
# PAYFEED_EMBEDDED=1 on purpose with PAYFEED_HOME on a volume.
set -eu
home="${PAYFEED_HOME:-/home/payfeed/.payfeed}"
if [ "${PAYFEED_EMBEDDED:-0}" = "1" ]; then
    if ! awk -v home="$home" '$5 == home { found = 1 } END { exit !found }' /proc/self/mountinfo; then
        echo "payfeed: PAYFEED_EMBEDDED=1 needs PAYFEED_HOME ($home) on a volume" \
            "(docker run -v payfeed-home:$home ...): without one the database is lost" \
            "with the container" >&2
        exit 2
    fi
else
    missing=""
    [ -n "${PAYFEED_DATABASE_URL:-}" ] || missing="$missing PAYFEED_DATABASE_URL"
    [ -n "${PAYFEED_SECRET_KEY:-}" ] || missing="$missing PAYFEED_SECRET_KEY"
    if [ -n "$missing" ]; then
        echo "payfeed: set$missing (see .env.example), or PAYFEED_EMBEDDED=1 with" \
            "PAYFEED_HOME on a volume for a single-container trial" >&2
        exit 2
    fi
fi
exec "$@"
