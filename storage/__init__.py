"""Partition logs: Kafka RecordBatch v2 stored in RocksDB (see docs/STORAGE.md).

Pure modules (no I/O): `batch` (header parsing, validation, building, decoding), `records` (the
varint record codec), `compression`, `keys` (RocksDB key layout), `segments` (roll and retention
decisions), `epoch_cache`, `producer_state`, `compaction` (the plan), `append` (validate before
write), `log` (the PartitionLog protocol and its value types).
Implementations: `rocksdb_log` (LogManager + RocksDBLog, the only rocksdict import) and
`memory_log` (MemoryLog, the model for tests). Import them directly; this package imports nothing
so that the broker's pure code does not pull in rocksdict.
"""
