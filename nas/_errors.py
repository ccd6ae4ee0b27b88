from space.errors import UserError

USER_ERRORS = (UserError,)
