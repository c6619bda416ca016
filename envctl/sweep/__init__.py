"""``envctl matrix verify`` and its dashboard: every real torch x variant in a range, derived,
locked, built and verified one after another, each recorded, resumable.

``plan`` is pure (the combinations, what the records already settle, failure classes, which
images to give back), ``run`` is the acting loop over the lock, build and verify workflows (on
the local engine or fleet targets), ``room`` gives back images and package cache files under
--keep / --max-disk, and ``html`` renders the recorded cells as one self-contained page.
"""
