/**
 * The init container's script: reads the writer URL from Parameter Store and renders PgBouncer's
 * config into an in-memory emptyDir. Because the backend comes from SSM at pod start,
 * `kubectl rollout restart deployment/pgbouncer` after the cutover rewrites the parameter is the
 * whole "repoint PgBouncer" operation. Kept apart so a test can run it under bash with stub
 * `aws` and `curl` commands.
 *
 * Environment: WRITER_URL_PARAMETER, AWS_REGION, CONFIG_DIR. The URL form is
 * postgresql://user:password@host[:port]/dbname[?…] with percent-encoded user and password.
 */
export const PGBOUNCER_PORT = 6432;

export const PGBOUNCER_CONFIG_SCRIPT = [
  'set -euo pipefail',
  'url=$(aws ssm get-parameter --with-decryption --name "$WRITER_URL_PARAMETER" --query Parameter.Value --output text)',
  'case "$url" in postgres://*|postgresql://*) ;; *) echo "parameter $WRITER_URL_PARAMETER does not hold a postgresql:// URL" >&2; exit 1 ;; esac',
  // Percent-decoding: %XX becomes \xXX for printf %b.
  'decode() { local s="${1//%/\\\\x}"; printf \'%b\' "$s"; }',
  'rest=${url#*://}',
  'userinfo=${rest%%@*}',
  'location=${rest#*@}',
  'user=$(decode "${userinfo%%:*}")',
  'password=$(decode "${userinfo#*:}")',
  'hostport=${location%%/*}',
  'host=${hostport%%:*}',
  'port=${hostport##*:}',
  '[ "$port" = "$hostport" ] && port=5432',
  'dbname=${location#*/}',
  'dbname=${dbname%%\\?*}',
  'curl -fsS --retry 3 -o "$CONFIG_DIR/rds-ca.pem" "https://truststore.pki.rds.amazonaws.com/$AWS_REGION/$AWS_REGION-bundle.pem"',
  'umask 077',
  'cat > "$CONFIG_DIR/pgbouncer.ini" <<INI',
  '[databases]',
  '$dbname = host=$host port=$port dbname=$dbname',
  '[pgbouncer]',
  'listen_addr = 0.0.0.0',
  `listen_port = ${PGBOUNCER_PORT}`,
  'auth_type = scram-sha-256',
  'auth_file = $CONFIG_DIR/userlist.txt',
  'pool_mode = transaction',
  'max_client_conn = 2000',
  'default_pool_size = 40',
  'server_tls_sslmode = verify-full',
  'server_tls_ca_file = $CONFIG_DIR/rds-ca.pem',
  'ignore_startup_parameters = extra_float_digits',
  'INI',
  // userlist.txt quoting: a double quote inside a field is doubled.
  'printf \'"%s" "%s"\\n\' "${user//\\"/\\"\\"}" "${password//\\"/\\"\\"}" > "$CONFIG_DIR/userlist.txt"',
  'echo "pgbouncer configured for $host:$port/$dbname"',
].join('\n');
