"""Where candidates' facts come from besides a table typed by hand: FHIR R4 patient records.

`fhir` reads Bundles and Bulk Data exports and groups their resources by patient; `mapping`
loads the site's declarations of how each fact is read from FHIR (YAML data, checked with
file:line:col errors); `extract` applies them to one patient's resources and says where each
value came from; `merge` joins several sources into one record per candidate.
"""
