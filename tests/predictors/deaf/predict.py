# A prediction that ignores its cancel: it blocks SIGIO, the signal the runner
# cancels with, and (deaf_to_sigterm) ignores SIGTERM, so that only SIGKILL
# ends it. Creates "deaf.ready" in the model directory (the runner's working
# directory) once it is deaf, so that tests wait for that, not for time.
import signal
import time

from cog import BasePredictor


class Predictor(BasePredictor):
    def predict(self, deaf_to_sigterm: bool = False) -> str:
        print("not listening")
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGIO})
        if deaf_to_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open("deaf.ready", "w").close()
        time.sleep(3600)
        return "woke up"
