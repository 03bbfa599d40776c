"""API errors rendered as meta/v1 Status objects, with the real apiserver's reasons and messages."""


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self):
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _details(resource, name, group=""):
    details = {"kind": resource}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    return details


def qualified(resource, group):
    return resource + "." + group if group else resource


def not_found(resource, name, group=""):
    return ApiError(404, "NotFound", '%s "%s" not found' % (qualified(resource, group), name),
                    _details(resource, name, group))


def already_exists(resource, name, group=""):
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (qualified(resource, group), name),
                    _details(resource, name, group))


def conflict(resource, name, group=""):
    return ApiError(
        409, "Conflict",
        'Operation cannot be fulfilled on %s "%s": the object has been modified; '
        "please apply your changes to the latest version and try again" % (qualified(resource, group), name),
        _details(resource, name, group))


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def invalid(kind, name, message, group=""):
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (kind, name, message),
                    {"kind": kind, "name": name, "group": group} if group else {"kind": kind, "name": name})


def method_not_allowed(message="the server does not allow this method on the requested resource"):
    return ApiError(405, "MethodNotAllowed", message)


def unauthorized():
    return ApiError(401, "Unauthorized", "Unauthorized")


def not_found_path():
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def unsupported_media(content_type):
    return ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                    "accepted media types include: application/json-patch+json, "
                    "application/merge-patch+json, application/strategic-merge-patch+json"
                    if content_type is None else
                    'the media type "%s" is not supported by this emulator' % content_type)


def internal(message):
    return ApiError(500, "InternalError", "Internal error occurred: %s" % message)


def unavailable(message):
    return ApiError(503, "ServiceUnavailable", message)


def success_status(kind, name, uid=None, group=""):
    details = {"name": name, "kind": kind}
    if group:
        details["group"] = group
    if uid:
        details["uid"] = uid
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
