"""The gRPC client for a bucketfs or Textile hub (layer 4).

``BucketsClient`` (``bucketfs.client.buckets``) is the entry point; ``errors`` holds the
exceptions every call raises, ``auth`` the per-call credentials, ``threads`` the ThreadDB calls.
Submodules are imported explicitly so importing this package stays cheap.
"""
