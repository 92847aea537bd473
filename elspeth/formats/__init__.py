"""Reading and writing records, public for every plugin: the CSV and JSON the built-in sources and sinks
use, for plugins that read or write them anywhere (a blob store, an object store, an API), and the opening of
input as text (a file, or bytes arriving in chunks) with bytes the encoding rejects quarantined, not lost."""

from elspeth.formats.csv_text import DEFAULT_MAX_FIELD_SIZE, CsvEncoder, CsvReading, read_csv
from elspeth.formats.json_records import encode_jsonl, read_json_array, read_jsonl
from elspeth.formats.text import UNDECODABLE, Origin, open_text, show_undecodable, text_stream

__all__ = [
    "DEFAULT_MAX_FIELD_SIZE",
    "UNDECODABLE",
    "CsvEncoder",
    "CsvReading",
    "Origin",
    "encode_jsonl",
    "open_text",
    "read_csv",
    "read_json_array",
    "read_jsonl",
    "show_undecodable",
    "text_stream",
]
