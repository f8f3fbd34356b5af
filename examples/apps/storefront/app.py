# The storefront service, deployed as team alpha's web-app.
# nestor:web-app name=storefront size=large replicas=4 image=registry.example.com/storefront:2.0.0 environment=staging

def main():
    print("storefront")
