"""Where studies live: opening storages by URL and fast curve writes, bulk reads, the gRPC proxy, the study lock, checkpoints and object stores, copying studies."""
