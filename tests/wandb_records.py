"""Read an offline W&B run file (run-<id>.wandb) without the network: a LevelDB-style log of
protobuf `Record`s (32 KiB blocks, 7-byte chunk headers: crc32, length, type)."""
from __future__ import annotations

import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
FILE_HEADER = struct.Struct("<4sHB")  # b":W&B", magic 0xBEE1, version
CHUNK_HEADER = struct.Struct("<IHB")  # crc32, length, type
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list:
    data = Path(path).read_bytes()
    ident, magic, _ = FILE_HEADER.unpack_from(data, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise ValueError(f"{path} is not a W&B run file")
    out, pending, pos = [], b"", FILE_HEADER.size
    while pos + CHUNK_HEADER.size <= len(data):
        if BLOCK - pos % BLOCK < CHUNK_HEADER.size:  # block tail too short for a header: padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = CHUNK_HEADER.unpack_from(data, pos)
        pos += CHUNK_HEADER.size
        chunk, pos = data[pos : pos + length], pos + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def config(path: Path) -> dict:
    """The run's config: every key set through `config` records, JSON-decoded."""
    values = {}
    for record in records(path):
        if record.WhichOneof("record_type") == "config":
            for item in record.config.update:
                values[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif record.WhichOneof("record_type") == "run":
            for item in record.run.config.update:
                values[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return values


def history_keys(path: Path) -> set[str]:
    """Every key logged through `log` (history records)."""
    keys = set()
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            keys.update(item.key or "/".join(item.nested_key) for item in record.history.item)
    return keys
