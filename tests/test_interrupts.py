"""A stop request is never lost and never raised inside Optuna's bookkeeping."""

import os
import signal

import pytest

from attend_search import interrupts


@pytest.fixture
def installed():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    interrupts.install()
    yield
    signal.signal(signal.SIGINT, before[0])
    signal.signal(signal.SIGTERM, before[1])
    interrupts._requested.clear()


def test_a_signal_raises_at_once_outside_a_search(installed):
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        interrupts.raise_if_requested()


def test_during_a_search_it_waits_for_the_evaluation_or_the_trial_boundary(installed):
    with interrupts.deferred():
        os.kill(os.getpid(), signal.SIGTERM)  # in Optuna's books: nothing raised here
        with pytest.raises(KeyboardInterrupt):  # the next evaluation does not start
            with interrupts.immediate():
                pytest.fail("an evaluation started after a stop request")
        with pytest.raises(KeyboardInterrupt):  # nor does the next trial
            interrupts.raise_if_requested()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # the second is ignored


def test_a_signal_inside_an_evaluation_stops_it_at_once(installed):
    with interrupts.deferred(), pytest.raises(KeyboardInterrupt), interrupts.immediate():
        os.kill(os.getpid(), signal.SIGINT)
        pytest.fail("the evaluation went on")


class _Swallows:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)  # raised in __del__: printed, then swallowed


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_interrupt_swallowed_by_a_finalizer_is_still_honoured(installed):
    _Swallows()  # SQLAlchemy's weakref callbacks do this
    with pytest.raises(KeyboardInterrupt):
        interrupts.raise_if_requested()
