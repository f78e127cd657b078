"""placeholder"""
def cohort_dashboard(*a, **k):
    raise NotImplementedError
