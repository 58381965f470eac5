"""The example's split bolt with faults injected once each, for squall's tests. A
sentence holding one of these words triggers its fault the first time it is seen (a
marker file in $FAULTS_DIR remembers it across restarts):

- "poison": the bolt fails the sentence (pystorm `fail`), which the spout replays;
- "crash":  process() raises, so pystorm reports the error, fails it and exits 1;
- "kill":   the process kills itself with SIGKILL (no goodbye at all);
- "hang":   the process stops answering (sleeps), so squall's heartbeat times out.
"""
import os
import signal
import time

from pystorm import Bolt


class SplitFaulty(Bolt):
    auto_ack = False  # acks or fails each sentence itself

    def initialize(self, storm_conf, context):
        self.faults = os.environ["FAULTS_DIR"]
        self.logger.info("split_faulty ready in task %s", context["taskid"])

    def first_time(self, fault):
        marker = os.path.join(self.faults, fault)
        if os.path.exists(marker):
            return False
        open(marker, "w").close()
        return True

    def process(self, tup):
        words = tup.values.sentence.lower().split()  # named by source->stream->fields
        if "poison" in words and self.first_time("poison"):
            self.logger.warning("failing a poisoned sentence")
            self.fail(tup)
            return
        if "crash" in words and self.first_time("crash"):
            raise RuntimeError("injected crash")
        if "kill" in words and self.first_time("kill"):
            os.kill(os.getpid(), signal.SIGKILL)
        if "hang" in words and self.first_time("hang"):
            time.sleep(3600)
        for word in words:
            if word == "fox":
                # Storm's protocol answers an emit with the tasks it reached.
                tasks = self.emit([word], need_task_ids=True)
                self.logger.info("'fox' went to tasks %s", tasks)
            else:
                self.emit([word])
        self.ack(tup)


if __name__ == "__main__":
    SplitFaulty().run()
