"""Uploads over UPLOAD_MAX_BYTES are stopped while they stream, never written whole to a temporary file.

Django's own handlers would write all of a 1 GB + 1 byte upload to disk before any form could
refuse it. This handler goes first: a request whose declared length is already over the limit is
refused before its first byte is stored, and one that turns out larger (a lying or missing length)
is refused at the chunk that crosses the limit. The rest of the body is read and dropped, so the
browser still gets the page that says why. The view learns the size from `request.upload_too_large`.
"""

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

# Room for the form's other fields and the multipart framing around the file.
FORM_OVERHEAD = 1024 * 1024


class SizeLimitedUploadHandler(FileUploadHandler):
    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.declared = content_length or 0
        self.request.upload_too_large = None

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        if self.declared > settings.UPLOAD_MAX_BYTES + FORM_OVERHEAD:
            self._refuse(self.declared)

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > settings.UPLOAD_MAX_BYTES:
            self._refuse(max(start + len(raw_data), self.declared))
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handler (memory or temporary file) makes the file

    def _refuse(self, size: int) -> None:
        self.request.upload_too_large = size
        # connection_reset=False: Django reads the rest and drops it, and the page still answers.
        raise StopUpload(connection_reset=False)
