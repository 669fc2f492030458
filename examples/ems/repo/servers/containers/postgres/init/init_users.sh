#!/bin/bash
# First start only (empty volume): one database and one user per app, passwords from this folder's .env.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<-EOSQL
	CREATE USER ems_user WITH PASSWORD '${EMS_DB_PASSWORD}';
	CREATE DATABASE db_ems OWNER ems_user;
	CREATE USER sms_user WITH PASSWORD '${SMS_DB_PASSWORD}';
	CREATE DATABASE db_sms OWNER sms_user;
EOSQL
