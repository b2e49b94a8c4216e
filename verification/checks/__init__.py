"""Machine checks over one run: pure functions of the run's steps, its registry and its goal.

No Django here: `verification.services` loads the rows, calls these and stores what they
find. Each check returns `FindingData`; none of them ever produces a label.
"""
