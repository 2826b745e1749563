"""The studio's waiting line: what a visitor is told is ahead of them follows what the jobs ahead cost."""

from ui.waiting_line import WaitingLine, wait_message


def test_what_is_ahead_is_the_remaining_cost_of_the_jobs_ahead():
    line = WaitingLine()
    assert line.join("a", 400.0) == (0, 0.0)
    running = line.start("a", 400.0)
    running.done = 0.25  # a quarter of A's job is done
    assert line.join("b", 2.0) == (1, 300.0)
    assert line.join("c", 50.0) == (2, 302.0)  # behind A's rest and B's small job, not "two average jobs"
    line.leave(session="b")  # B cancelled while waiting
    assert line.join("d", 1.0) == (2, 350.0)
    line.leave(ticket=running)  # A's job ended
    assert line.start("c", 50.0).session == "c" and len(line) == 2


def test_a_job_that_never_joined_still_counts_and_stale_tickets_expire():
    line = WaitingLine(max_wait=0.0)
    line.join("turned away", 999.0)  # Gradio refused the job (queue full): its ticket never starts
    api = line.start("api", 10.0)  # an API job runs without having joined
    assert line.join("b", 1.0) == (1, 10.0)  # the stale ticket is gone, the running one counts
    line.leave(ticket=api)


def test_the_message_says_jobs_and_time_only_once_a_rate_is_measured():
    assert wait_message(0, 0.0, 0.5) == ""
    assert wait_message(1, 400.0, None) == "**Waiting:** 1 job ahead of yours."
    assert wait_message(2, 400.0, 0.05) == "**Waiting:** 2 jobs ahead of yours, about 20 s of work by what they cost."
    assert "min" in wait_message(3, 4000.0, 0.05)
