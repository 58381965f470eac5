"""A pystorm bolt: splits a sentence into lower-case words, each anchored to the
sentence (pystorm anchors to the current tuple and acks it after `process`). squall's
handshake names the input's fields (`source->stream->fields`), so the values are a
namedtuple: `tup.values.sentence`."""
import os

from pystorm import Bolt


class Split(Bolt):
    def process(self, tup):
        for word in tup.values.sentence.lower().split():
            self.emit([word])


if __name__ == "__main__":
    # `serializer = "msgpack"` in squall's options needs the same here (and the msgpack
    # package): the topology sets PYSTORM_SERIALIZER in `env`.
    Split(serializer=os.environ.get("PYSTORM_SERIALIZER", "json")).run()
