"""The payment service: fees and obligations of dossiers, online payment through the national
payment platform, electronic receipts, refunds and the daily reconciliation.

Settings (environment, prefix ``PAYMENT_`` per service as usual): ``PAYMENT_MERCHANT_SECRET``
(+ ``_PREVIOUS`` while rotating), ``PAYMENT_MERCHANT_CODE``, ``PAYMENT_PLATFORM_URL`` (the
platform's pay page), ``PAYMENT_PUBLIC_URL`` / ``PAYMENT_NOTIFY_URL`` (where the local
platform sends its notifications), ``PAYMENT_QUERY_AFTER`` (seconds before a pending payment
is asked about), ``PAYMENT_TICK``, ``PAYMENT_EXPIRY_INTERVAL``, ``RECEIPT_FONT``;
``LOCAL_ADAPTERS`` turns on the local stand-in platform.
"""
