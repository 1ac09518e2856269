"""Constants of the Braze API and of the data contract: one place for each default."""

DEFAULT_BASE_URL = "https://rest.iad-01.braze.com"
DATA_SERIES_PATH = "/sends/data_series"

PIPELINE_NAME = "braze_sends"
DATASET_NAME = "braze"
SOURCE_SECTION = "braze"

# Braze keeps a send's analytics this long after the send, then deletes them for good.
RETENTION_DAYS = 14
# `length` of /sends/data_series must be within 1..100 (inclusive).
MAX_SERIES_LENGTH = 100
# Send ids are ASCII, at most 64 characters (POST /sends/id/create).
MAX_ID_LENGTH = 64

# The shared export pool is 250,000 requests/hour per workspace; other tools draw from it too,
# so by default this pipeline takes 80% of it (the share ingestr uses).
BRAZE_REQUESTS_PER_HOUR = 250_000
DEFAULT_REQUESTS_PER_HOUR = 200_000
DEFAULT_WORKERS = 8

# Pairs pulled and loaded per dlt load: memory stays bounded however many are due, and a run
# killed halfway keeps the chunks it completed.
DEFAULT_CHUNK_PAIRS = 1000
# DuckDB settings for the embedded default (override: [destination.duckdb.credentials.global_config]).
DUCKDB_DEFAULTS = {"memory_limit": "128MB", "threads": 1}
# Committing a merge into a wide table pins buffers per column: measured here, 205 columns failed
# at 200 MB and passed at 256 MB, 355 failed at 420 MB and passed at 512 MB. So before each load
# the cap becomes 1.5 MB per column of the widest table, never under the default's 128 MB.
DUCKDB_MB_PER_COLUMN = 1.5
DUCKDB_MIN_MB = 128

# Tables of the data contract (dataset `braze`).
VARIATION_TABLE = "send_variation_daily"
DAILY_TABLE = "send_daily"
SENDS_TABLE = "sends"
