"""Builds vaak's gRPC stubs into the package (vaak.v1.vaak_pb2, vaak.v1.vaak_pb2_grpc).

The proto is the repository's own `proto/vaak/v1/vaak.proto` (two directories up); an sdist
carries a copy under `proto/`. Nothing generated is committed.
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join("vaak", "v1", "vaak.proto")


def proto_root():
    for root in (os.path.join(HERE, "proto"), os.path.join(HERE, "..", "..", "proto")):
        if os.path.isfile(os.path.join(root, PROTO)):
            return os.path.abspath(root)
    raise SystemExit("vaak-client: %s not found (build from the vaak repository)" % PROTO)


class BuildWithStubs(build_py):
    def run(self):
        super().run()
        import grpc_tools
        from grpc_tools import protoc

        root = proto_root()
        well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
        out = os.path.abspath(self.build_lib)
        rc = protoc.main(["grpc_tools.protoc", "-I", root, "-I", well_known,
                          "--python_out=" + out, "--grpc_python_out=" + out, PROTO])
        if rc != 0:
            raise SystemExit("vaak-client: protoc failed (exit %s) on %s" % (rc, PROTO))
        # Keep the proto beside its stubs: reflection-free tools (grpcurl -proto) can use it.
        shutil.copy(os.path.join(root, PROTO), os.path.join(out, PROTO))
        open(os.path.join(out, "vaak", "v1", "__init__.py"), "a").close()


setup(cmdclass={"build_py": BuildWithStubs})
