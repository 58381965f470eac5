"""A pystorm bolt that emits its input unchanged (the multi-lang benchmark's bolt)."""
import os

from pystorm import Bolt


class Passthrough(Bolt):
    def process(self, tup):
        self.emit(list(tup.values))


if __name__ == "__main__":
    # `serializer = "msgpack"` in squall's options needs the same here (and the msgpack
    # package): the topology sets PYSTORM_SERIALIZER in `env`.
    Passthrough(serializer=os.environ.get("PYSTORM_SERIALIZER", "json")).run()
