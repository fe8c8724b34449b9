"""The reference pipeline: keys clip folders from the shell with the ``.pt``'s math.

* :mod:`.cli`: the ``corridorkey`` command (``run``, ``farm-job``).
* :mod:`.stages`: the stages as plain functions with frozen dataclass contracts.
* :mod:`.runner`: the ordered, bounded-queue threaded runner.
* :mod:`.frame_io`: the one place that reads and writes images (OpenImageIO) and video (PyAV).
* :mod:`.colour_management`: the Nuke node's OCIO conversions (``--ocio-config``).
* :mod:`.video_out`: ``--video-out``, review videos of a keyed clip with a metadata sidecar.
* :mod:`.farm`: Open Job Description jobs for render farms.
"""
