"""The studio's waiting line: what a visitor is told is ahead of them follows what the jobs ahead cost."""

from ui.waiting_line import WaitingLine, wait_message


def test_the_running_job_counts_with_the_cost_it_has_left_and_leaves_on_every_end():
    line = WaitingLine()
    assert line.running() == (0, 0.0)
    running = line.start("a", 400.0)
    running.done = 0.25  # a quarter of A's job is done
    assert line.running() == (1, 300.0)
    other = line.start("api", 10.0)
    line.leave(session="a")  # A cancelled or its tab closed
    assert line.running() == (1, 10.0)
    line.leave(ticket=other)  # the API job ended, however
    assert line.running() == (0, 0.0) and len(line) == 0


def test_the_message_says_jobs_and_time_only_once_a_rate_is_measured():
    assert wait_message(0, 0.0, 0.5) == ""
    assert wait_message(1, 400.0, None) == "**Waiting:** 1 job ahead of yours."
    assert wait_message(2, 400.0, 0.05) == "**Waiting:** 2 jobs ahead of yours, about 20 s of work by what they cost."
    assert "min" in wait_message(3, 4000.0, 0.05)
