"""Bulk deletes, written once: an app declares a `BulkDelete` (delete.py) for its
resource and gets the plan, the confirmation, the job kind and the page
(views.py, with one template: portal/bulk_delete_confirm.html). matching.py
holds what "select all matching" needs: counted confirmations and jobs that
carry a filter instead of ids."""
