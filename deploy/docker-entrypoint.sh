#!/bin/sh
# The image's entry point: reads secrets from files, then runs `selfheal ARGS`
# (`serve` unless told otherwise).
#  - VAR_FILE=/run/secrets/x sets VAR from that file (Compose and Kubernetes
#    secrets), for DATABASE_URL, SECRET_KEY and API_KEYS; the values never
#    appear in the container's configuration.
#  - A config file mounted at /etc/selfheal/selfheal.yaml is used unless
#    SELFHEAL_CONFIG names another.
set -eu
for var in DATABASE_URL SECRET_KEY API_KEYS; do
  eval "file=\${${var}_FILE:-}"
  if [ -n "$file" ]; then
    if [ ! -r "$file" ]; then
      echo "error: ${var}_FILE=$file is not a readable file" >&2
      exit 2
    fi
    value=$(cat "$file")
    export "$var=$value"
    unset "${var}_FILE"
  fi
done
if [ -z "${SELFHEAL_CONFIG:-}" ] && [ -f /etc/selfheal/selfheal.yaml ]; then
  export SELFHEAL_CONFIG=/etc/selfheal/selfheal.yaml
fi
exec selfheal "$@"
