"""What the API accepts and documents: request and response models, rules, the OpenAPI document."""
