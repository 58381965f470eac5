"""A pystorm bolt that emits its input unchanged (the multi-lang benchmark's bolt)."""
from pystorm import Bolt


class Passthrough(Bolt):
    def process(self, tup):
        self.emit(list(tup.values))


if __name__ == "__main__":
    Passthrough().run()
