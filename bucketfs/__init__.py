"""bucketfs: content-addressed buckets as ordinary folders.

Layers (each uses only those above it): generated protocol stubs (``bucketfs.pb``),
the content-addressing core (``bucketfs.ipfs``), the hub server (``bucketfs.hub``),
the gRPC client (``bucketfs.client``), the FUSE mount (``bucketfs.mount``) and the
command line (``bucketfs.cli``).
"""

__version__ = "0.1.0"
