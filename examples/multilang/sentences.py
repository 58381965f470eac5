"""A pystorm spout: one tuple per non-empty line of a file, tracked by its line number;
lines whose tuple tree fails are replayed. Usage: sentences.py FILE"""
import os
import sys

from pystorm import Spout


class Sentences(Spout):
    def initialize(self, storm_conf, context):
        path = sys.argv[1]
        with open(path, encoding="utf-8") as f:
            self.lines = [line.strip() for line in f if line.strip()]
        self.next_line = 0
        self.replays = []
        self.acked = set()
        self.logger.info("sentences: %d lines from %s", len(self.lines), path)

    def next_tuple(self):
        if self.replays:
            i = self.replays.pop(0)
        elif self.next_line < len(self.lines):
            i = self.next_line
            self.next_line += 1
        else:
            return  # all emitted: wait for outcomes
        self.emit([self.lines[i]], tup_id=i)

    def ack(self, tup_id):
        self.acked.add(tup_id)
        if len(self.acked) == len(self.lines):
            self.logger.info("sentences: all %d lines acked", len(self.lines))

    def fail(self, tup_id):
        self.logger.warning("sentences: line %s failed, replaying it", tup_id)
        self.replays.append(tup_id)


if __name__ == "__main__":
    # `serializer = "msgpack"` in squall's options needs the same here (and the msgpack
    # package): the topology sets PYSTORM_SERIALIZER in `env`.
    Sentences(serializer=os.environ.get("PYSTORM_SERIALIZER", "json")).run()
