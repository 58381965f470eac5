"""A pystorm bolt: splits a sentence into lower-case words, each anchored to the
sentence (pystorm anchors to the current tuple and acks it after `process`)."""
from pystorm import Bolt


class Split(Bolt):
    def process(self, tup):
        for word in tup.values[0].lower().split():
            self.emit([word])


if __name__ == "__main__":
    Split().run()
