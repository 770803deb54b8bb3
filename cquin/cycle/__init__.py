"""The commissioning cycle over stored runs: sign-off, comparison over time, reconciliation and audit samples.

The indicator is paid once a year but worked through a cycle (handbook 4.3.2: analyse, plan, do,
review).  Each module here reads runs from the audit store and, for sign-off, records decisions in
it; none re-reads patient records.
"""
