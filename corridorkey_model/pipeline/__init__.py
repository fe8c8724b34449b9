"""The reference pipeline: keys clip folders from the shell with the ``.pt``'s math.

* :mod:`.cli`: the ``corridorkey`` command (``run``, ``farm-job``).
* :mod:`.stages`: the stages as plain functions with frozen dataclass contracts.
* :mod:`.runner`: the ordered, bounded-queue threaded runner.
* :mod:`.frame_io`: the one module that reads and writes images and video.
* :mod:`.farm`: Open Job Description jobs for render farms.
"""
