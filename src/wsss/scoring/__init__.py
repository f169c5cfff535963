"""The numbers and pictures: metrics, scoring a stage, result tables, report figures."""
